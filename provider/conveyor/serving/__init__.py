"""The serving gateway (ASGI under uvicorn) and the MLflow deployments plugin (target ``conveyor``)."""
