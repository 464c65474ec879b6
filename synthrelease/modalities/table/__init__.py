"""The table modality (:mod:`.modality`)."""
