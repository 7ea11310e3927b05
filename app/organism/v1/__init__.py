"""The v1 persona world (design runs 1-8, the shipped organism): kept until a full v2 build
replaces the committed artifacts, because the shipped REPORT.json and the tests that
recompute it regenerate this corpus."""
