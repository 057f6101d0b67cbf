"""HTTP routes, one module per concern; :func:`anomalyops_api.main.create_app` mounts them."""
