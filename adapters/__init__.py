"""loradock's model side: LoRA training, evaluation, merging and export."""
