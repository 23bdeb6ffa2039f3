"""Images: a Glance v2 compatible image catalog, with every upload inspected before it is accepted."""
