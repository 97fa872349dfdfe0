"""Knowledge assist: the knowledge base, its passage index, the learned re-ranker and their evaluation."""
