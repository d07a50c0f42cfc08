"The data: the procedural world and its miniature benchmark, the miniature CLIP pretrained on it, and readers for the real datasets' layouts."
