"""Language data with no download, and small causal language models (issue 19): a corpus of
text already on the machine, a word-level tokenizer trained on it, a synthetic Markov language
whose Bayes-optimal next-token loss is known exactly, and a small transformer trained on them.

- `corpus.build_corpus`: CPython's pydoc topics and installed packages' docstrings, cleaned,
  deduplicated, split into train and validation by document, with a content hash.
- `tokenizer.train_tokenizer`: the top-V words and punctuation of the train split.
- `synthetic.synthetic_language`: a seeded Zipfian Markov source with a chosen entropy rate.
- `transformer.Transformer`: a decoder-only causal transformer; its last hidden states are
  the features and its unembedding the classifier that the neural-collapse metrics read.
- `train.train`, `train.evaluate`: AdamW with warm-up and cosine decay on token windows, and
  the mean next-token loss of a stream.
"""
