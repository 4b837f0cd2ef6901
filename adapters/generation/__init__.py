"""Text generation: causal bases, chat and prompt/completion data, LoRA training for CAUSAL_LM."""
