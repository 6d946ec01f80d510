"""Language data with no download (issue 19): a corpus of text already on the machine, a
word-level tokenizer trained on it, and a synthetic Markov language whose Bayes-optimal
next-token loss is known exactly.

- `corpus.build_corpus`: CPython's pydoc topics and installed packages' docstrings, cleaned,
  deduplicated, split into train and validation by document, with a content hash.
- `tokenizer.train_tokenizer`: the top-V words and punctuation of the train split.
- `synthetic.synthetic_language`: a seeded Zipfian Markov source with a chosen entropy rate.
"""
