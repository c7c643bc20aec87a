"""`dlclassics serve`: the lab's page (`dlclassics.lab`) of the learner's runs, exported into a
temporary folder and served on a local port by the standard library's HTTP server."""
