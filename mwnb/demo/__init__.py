"""The local demo archive, which stands in for the real services on 127.0.0.1 and behaves as they do.

moto's S3 server and VO-like HTTP services (`archive`, `tap`, `vo`) and the demo content each tutorial needs
(`crab`, `crossmatch`, `fermi`, `swift`, `hats`, `wmap`).

Nothing in `mwnb` itself imports this subpackage: it exists for `--archive local`, the tests and the
benchmarks. Its tables and files are labelled as demo data wherever they surface."""
