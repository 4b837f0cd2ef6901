"""loradock's server: one base model, many domain adapters, mixed batches."""
