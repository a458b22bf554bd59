"""Activities: everything that touches the world (the model, the tools)."""
