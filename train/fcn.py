"""Turning a trained classifier CNN into a fully convolutional localizer (the book's FCN).

The first Dense after Flatten becomes a Conv2D whose kernel covers the whole flattened
feature map (12x12 for ``mnist_cnn``); every later Dense becomes a 1x1 Conv2D. Weights are
copied by reshaping, which is valid because channels-last Flatten orders features (h, w, c).
The result takes inputs of any size: an HxW image gives a map of
``floor((H-28)/2)+1 x floor((W-28)/2)+1`` class-probability vectors for ``mnist_cnn``.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


class FCNConversionError(ValueError):
    """The source model has a layer the conversion does not know how to carry over."""


def to_fcn(cnn, name: str = "mnist_fcn"):
    """Build the fully convolutional twin of ``cnn`` (a Sequential classifier), weights copied.

    Raises:
        FCNConversionError: ``cnn`` has no Flatten, or a layer with no convolutional equivalent.
    """
    import keras
    from keras import layers

    channels = cnn.input_shape[-1]
    inputs = keras.Input(shape=(None, None, channels), name="input")
    x = inputs
    flat_shape = None  # (h, w, c) of the feature map before Flatten
    transfers = []  # (new layer, function mapping the old weights)
    for layer in cnn.layers:
        if isinstance(layer, layers.Flatten):
            flat_shape = tuple(layer.input.shape[1:])
            continue
        if isinstance(layer, layers.Dense):
            if flat_shape is None:
                raise FCNConversionError(f"Dense layer {layer.name!r} comes before any Flatten")
            h, w, c = flat_shape
            conv = layers.Conv2D(
                layer.units,
                (h, w),
                activation=layer.activation,
                use_bias=layer.use_bias,
                name=f"{layer.name}_as_conv",
            )
            x = conv(x)

            def reshape(weights, h=h, w=w, c=c, units=layer.units):
                kernel, *rest = weights
                return [kernel.reshape(h, w, c, units), *rest]

            transfers.append((conv, layer, reshape))
            flat_shape = (1, 1, layer.units)
            continue
        if isinstance(layer, (layers.Conv2D, layers.MaxPooling2D, layers.Dropout, layers.Activation)):
            if flat_shape is not None and not isinstance(layer, (layers.Dropout, layers.Activation)):
                raise FCNConversionError(f"{layer.name!r} follows Flatten; cannot convert it")
            clone = layer.__class__.from_config({**layer.get_config(), "name": layer.name})
            x = clone(x)
            if layer.weights:
                transfers.append((clone, layer, lambda weights: weights))
            continue
        raise FCNConversionError(
            f"layer {layer.name!r} ({type(layer).__name__}) has no fully convolutional equivalent; "
            "supported: Conv2D, MaxPooling2D, Dropout, Activation, Flatten, Dense"
        )
    if flat_shape is None:
        raise FCNConversionError(f"{cnn.name!r} has no Flatten layer: it is not a CNN classifier")
    fcn = keras.Model(inputs, x, name=name)
    for new, old, mapping in transfers:
        new.set_weights(mapping(old.get_weights()))
    logger.info("converted %s to %s (%d parameters)", cnn.name, name, fcn.count_params())
    return fcn


def fcn_output_size(height: int, width: int) -> tuple[int, int]:
    """Output map size of ``mnist_fcn`` for an HxW input (the book's formula)."""
    return (height - 28) // 2 + 1, (width - 28) // 2 + 1
