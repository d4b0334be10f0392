"""Memory-augmented Dense Predictive Coding (MemDPC) in Keras 3."""

from keras_memdpc.adam_l2 import AdamL2
from keras_memdpc.block_distributed import BlockDistributed
from keras_memdpc.conv_gru import ConvGRU, ConvGRUCell
from keras_memdpc.dense_contrastive_loss import (
    dense_contrastive_logits,
    dense_contrastive_loss,
    top_k_accuracy,
)
from keras_memdpc.memdpc import MemDPC
from keras_memdpc.memory_bank import MemoryBank
from keras_memdpc.resnet_2d3d import ResNet2D3D

__version__ = "0.1.0"
