"""Adam with coupled L2 weight decay, as torch.optim.Adam(weight_decay=...)."""

import keras


@keras.saving.register_keras_serializable(package="keras_memdpc")
class AdamL2(keras.optimizers.Adam):
    """Adam whose weight decay is added to the gradient before the moments.

    torch.optim.Adam's `weight_decay` (what the reference trains with) is this
    coupled L2: g <- g + l2 * w. Keras's own `weight_decay` argument decays the
    weights directly, as AdamW does; use `keras.optimizers.AdamW` for that.

    Args:
        l2: the coupled L2 coefficient (1e-5 in MemDPC).
        **kwargs: the arguments of `keras.optimizers.Adam`.
    """

    def __init__(self, l2=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.l2 = l2

    def update_step(self, gradient, variable, learning_rate):
        gradient = gradient + keras.ops.cast(self.l2, gradient.dtype) * variable
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "l2": self.l2}
