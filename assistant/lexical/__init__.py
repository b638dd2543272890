"""The keyword side of search: tokens (`terms`), the BM25F index (`index`) and keeping it
current with a store that several clients may write (`sync`)."""
