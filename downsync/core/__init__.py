"""The sync core: what a calendar backend must do (``gateway``), the pure decision of what a mailbox needs
(``plan``), and converging one placement under a lease in the store (``converge``)."""
