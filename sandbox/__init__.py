"""codecot sandbox: run untrusted Python in a fresh, limited, network-less interpreter."""
