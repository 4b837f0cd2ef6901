"""Hub sync: push registered versions to a Hugging Face Hub repo (`push`) and pull them back (`pull`).

`record` is what loradock keeps in a repo besides the PEFT files and its checks;
`transport` holds every Hub call, retries, error translation and safe downloads;
`model_card` writes and reads the README.
"""
