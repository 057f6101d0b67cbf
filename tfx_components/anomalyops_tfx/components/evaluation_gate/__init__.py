"""Evaluation gate for an unsupervised model: calibrate, evaluate, compare, bless."""
