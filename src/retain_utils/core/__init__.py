"""The model-side core: models and their loading, generation, the tasks, evaluation and log-probabilities, the
trainers, and the results files every run writes. Imports nothing from the other folders."""
