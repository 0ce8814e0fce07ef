"""The model folder: its files and manifest, its formats, its I/O signature,
its parity record, checked inputs, the .npy exchange with Node."""
