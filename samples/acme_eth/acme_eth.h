/* SPDX-License-Identifier: GPL-2.0 */
#ifndef ACME_ETH_H
#define ACME_ETH_H

#include <linux/netdevice.h>
#include <linux/dma-mapping.h>

#define ACME_RING_SIZE	256
#define ACME_RX_BUF_LEN	1536

struct acme_desc {
	__le64 addr;
	__le32 len;
	__le32 flags;
};

struct acme_tx_buf {
	struct sk_buff *skb;
	DEFINE_DMA_UNMAP_ADDR(mapping);
	DEFINE_DMA_UNMAP_LEN(len);
};

struct acme_priv {
	struct net_device *ndev;
	struct device *dev;
	void __iomem *regs;
	struct acme_desc *tx_ring;
	struct acme_desc *rx_ring;
	struct acme_tx_buf tx_buf[ACME_RING_SIZE];
	struct sk_buff *rx_skb[ACME_RING_SIZE];
	dma_addr_t rx_dma[ACME_RING_SIZE];
	unsigned int tx_head, tx_tail, rx_head;
	spinlock_t lock;
};

#endif
