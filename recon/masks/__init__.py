"""Object masks for photos that come without them: a salient-object network per view (saliency.py)
made consistent across the posed views by a soft visual hull (refine.py)."""
