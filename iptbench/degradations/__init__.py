"""The corruptions, one home for training and evaluation: bicubic LR, Gaussian noise (uint8 / float), rain.

May import iptbench.ops, images and errors only; pairs, benchmarks and evaluation import it.
"""
