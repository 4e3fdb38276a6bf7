"""Assets the churnwatch DAGs produce and consume, defined once (imported by DAG files only)."""
from airflow.sdk import Asset

RAW_LAYER = Asset("churnwatch://warehouse/raw")
CUSTOMER_FEATURES = Asset("churnwatch://warehouse/marts/customer_features")
CHAMPION_MODEL = Asset("churnwatch://mlflow/models/churnwatch_churn")
ANALYST_CATALOG = Asset("churnwatch://warehouse/analytics")
