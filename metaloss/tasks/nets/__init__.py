"""The model families of :mod:`metaloss.tasks.models` (which holds the registry and
:func:`~metaloss.tasks.models.build_model`): :mod:`.layers` (shared blocks and checks),
:mod:`.dense` (linear, MLP), :mod:`.conv` (LeNet-5, All-CNN-C, VGG-16, AlexNet, SqueezeNet)
and :mod:`.resnet` (ResNet-18, pre-activation ResNet, Wide ResNet, PyramidNet)."""
