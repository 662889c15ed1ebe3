"""sitetune: turn a website's pages into a domain-tuned embedding model and a cited search service.

Pipeline, one stage per module::

    crawl -> sectionize -> corpus -> pairs -> train -> evaluation -> index -> search / answer -> serve
"""

__version__ = "0.1.0"
