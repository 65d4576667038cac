"""A plain multilayer perceptron: the cheapest model for tests and tabular data."""
from .. import nn
from .common import check_positive_int


class MLP(nn.Module):
    """Flatten, then Linear-ReLU per hidden size, then a Linear classifier."""

    def __init__(self, in_features=784, num_classes=10, hidden=(128,)):
        super().__init__()
        hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
        check_positive_int("mlp", in_features=in_features, num_classes=num_classes,
                       **{f"hidden[{i}]": h for i, h in enumerate(hidden)})
        layers = [nn.Flatten()]
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


def mlp(in_features=784, num_classes=10, hidden=(128,)):
    return MLP(in_features, num_classes, hidden)
