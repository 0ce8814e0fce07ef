"""The model fuzzer: seeded Keras RNN models over the space users ship
(space.py, build.py), each verified through the real user path and given one
seeded weight fault (faults.py), with the verdicts tabled against the
models' features and the coverage of the generator's space (harness.py,
tables.py). `tfjs-bridge fuzz`, `make fuzz`."""
