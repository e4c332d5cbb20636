# Type-checked by test_ops.py: mypy must report an error on exactly the lines marked "# error".
import hypersdk

hypersdk.run("image.convert", {"source": "a", "destination": "b", "output_format": "qed"})  # error
hypersdk.run("image.convert", {"source": "a", "destination": "b", "output_format": "raw", "threads": "4"})  # error
hypersdk.run("image.info", {"pathh": "disk.qcow2"})  # error
size: str = hypersdk.run("image.info", {"path": "d"})["virtual-size"]  # error
hypersdk.run("image.info", {"path": "d"}, progress=lambda p: p["nope"])  # error
hypersdk.run("image.nope", {})  # error
hypersdk.HyperSDK(timeout="soon")  # error
hypersdk.HyperSDK().submit_job(42)  # error
percent: str = hypersdk.HyperSDK().get_job_progress("j").percent_complete  # error
library_job: hypersdk.Job[int] = hypersdk.HyperSDK().get_job("j")  # error
