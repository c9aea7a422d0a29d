"""What the train loop (`dfflows.train`) and `dfflows.evaluate` run on: the jitted step over a
device mesh (`trainer`), its state and optimizer (`train_state`), checkpoints, the config
checks, and a trained run restored from its workdir (`run.load_run`). `trainer` and
`train_state` import without TensorFlow or clu (the benchmarks use them)."""
