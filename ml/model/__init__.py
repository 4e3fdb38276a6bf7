"""The model: the churn scorer (MLflow pyfunc), calibration, contributions, reasons, value,
baselines, metrics, segments and the pictures of a training run. Pure computation: these modules
never touch the warehouse and import only each other (never a stage or a face)."""
