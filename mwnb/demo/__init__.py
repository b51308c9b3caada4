"""The local demo archive: moto's S3 server and VO-like HTTP services on 127.0.0.1 (`archive`, `tap`, `vo`)
and the demo content each tutorial needs (`crab`, `crossmatch`, `fermi`, `swift`).

Nothing in `mwnb` itself imports this subpackage: it exists for `--archive local`, the tests and the
benchmarks. Its tables and files are labelled as demo data wherever they surface."""
