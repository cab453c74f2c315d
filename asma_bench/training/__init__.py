"""Training machinery shared by pretraining and the protocols: the data a unit trains on,
the training loop (seeding, optimisers, schedules, batching, prediction), self-supervised
pretraining, linear probes, metrics, checkpoints and data-parallel runs."""
