"""Training: LoRA (or full) fine-tuning, evaluation and plots."""
