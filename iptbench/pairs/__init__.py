"""Training pairs: image sources, the parallel builder and its workers, the HDF5 pair file, tools, patches.

May import iptbench.degradations, images, io, errors, tasks and ops; never benchmarks, evaluation or train.
"""
