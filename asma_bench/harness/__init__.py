"""The harness: grids, the runner, MLflow tracking, work queues and tuning."""
