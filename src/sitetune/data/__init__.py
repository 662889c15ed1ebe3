"""Packaged data: the sample site, the question sets and the STS pairs."""
