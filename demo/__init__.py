"""``edgerun demo``: the main job on the bundled models, with the runtime install only."""
