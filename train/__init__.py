"""Keras training of the books' models: the registry, data loading, training, FCN conversion."""
