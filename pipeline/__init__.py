"""kmatrix: a declarative build/test matrix for out-of-tree kernel modules and Rust crates."""

__version__ = "0.1.0"
