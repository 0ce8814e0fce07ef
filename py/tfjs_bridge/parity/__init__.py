"""Proving that a Node path computes what Python computed: the truth (Keras or
an imported tfjs model), probe inputs, the comparison rule, verify, reports."""
