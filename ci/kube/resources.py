"""The names hilci's Kubernetes side agrees on: extended resources and node labels (one spelling for the cluster
view, preflight, the device plugin and the pod templates' checks)."""

GPU = "nvidia.com/gpu"  # NVIDIA's device plugin; a Jetson advertises one
RIG = "hilci.dev/rig"  # our device plugin: one device per rig wired to the node
BOARD_LABEL = "hilci.dev/board"
ARCH_LABEL = "kubernetes.io/arch"
GPU_LABELS = ("nvidia.com/gpu.present", "nvidia.com/gpu.product")
