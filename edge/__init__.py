"""Device-side code: int8 export, Edge TPU preflight/compile and the runner (issue 5)."""
