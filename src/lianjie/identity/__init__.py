"""OneID: identifiers, the identity graph, merge/unmerge, profiles, events, consent and PIPL requests."""
