"""Application services: the logic behind the views, one module per area. Views stay thin."""
