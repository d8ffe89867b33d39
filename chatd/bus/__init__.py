"""How a committed message reaches every instance's hub."""
