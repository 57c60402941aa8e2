"""FAISS template index: build by size (build), versioned artifacts (artifact), shipping to workers (distribute).

Importing faiss makes its loader try the AVX-512 / AVX2 builds first and log every miss at INFO on the
`faiss.loader` logger ("No module named 'faiss.swigfaiss_avx2'"), on every index stage; the faiss-cpu wheel
ships one build with runtime dispatch, so those lines only alarm. The logger is set to WARNING here,
before any module of this package imports faiss, and fi_spark.index.build logs the build in use at DEBUG.
"""

import logging

logging.getLogger("faiss.loader").setLevel(logging.WARNING)
