"""Edge-side client code: signing and uploading detections to the hub."""
