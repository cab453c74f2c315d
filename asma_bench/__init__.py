"""asma-bench: a benchmark harness for self-supervised skeleton action recognition.

Masking strategies (ASMa's HDSM/LDSM/HMTM/LMTM and the strategies of PSTL, Skeleton2vec,
HA-CM, MAMP), backbones and SSL objectives plug in by name and are compared under the
same data, protocols and statistics.
"""

from asma_bench.errors import AsmaBenchError, ConfigError, DataFormatError

__version__ = "0.1.0"

__all__ = ["AsmaBenchError", "ConfigError", "DataFormatError", "__version__"]
