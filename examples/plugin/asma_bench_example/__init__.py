"""An example asma-bench plug-in (see docs/extending.md): one file per kind of plug-in,
registered when asma-bench loads the ``asma_bench.plugins`` entry point.

* masking strategy ``depth_weighted``: n joints per clip with p_v ∝ 1 + depth_v, the
  joint's hop distance from the layout's centre (distal joints masked most);
* pairing ``depth_hmtm``: depth_weighted joints + HMTM frames;
* objective ``weighted_triplet``: ASMa's triplet Barlow Twins (eq. 8) with the two terms
  weighted, L = α L1 + (1 − α) L2 (α = 0.5 is eq. 8 up to a factor 2);
* backbone ``joint_tcn``: a graph-free per-joint temporal network;
* protocol ``knn``: k-NN evaluation of the frozen pretrained features;
* grid ``grids/depth.yaml``: the four used together (run it by path).
"""

from asma_bench_example.backbone import JointTCN
from asma_bench_example.masking import DepthWeighted
from asma_bench_example.objective import WeightedTriplet
from asma_bench_example.protocol import knn

__all__ = ["DepthWeighted", "JointTCN", "WeightedTriplet", "knn"]
