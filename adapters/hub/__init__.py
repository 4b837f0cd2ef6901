"""Hub sync: push registered versions to a Hugging Face Hub repo and pull them back."""
