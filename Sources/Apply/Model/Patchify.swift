import GSLoRAFormat

/// Images [batch, C, H, W] → flattened patches [batch·patches, patchDim], patch n = row-major grid position.
/// Face transformer: einops `b c (h p1) (w p2) -> b (h w) (p1 p2 c)` (channel fastest). Conv families
/// (torchvision, timm): (c p1 p2), the order of the flattened conv kernel, so the conv is one GEMM.
enum Patchify {
    static func run(config c: ModelConfig, images: UnsafePointer<Float>, batch: Int, out: UnsafeMutablePointer<Float>) {
        let ps = c.patchSize, g = c.gridSize, ch = c.channels, size = c.imageSize, pd = c.patchDim
        let face = c.family == .faceViT
        for b in 0..<batch {
            let img = images + b * ch * size * size
            for i in 0..<g {
                for j in 0..<g {
                    let dst = out + ((b * g + i) * g + j) * pd
                    for k in 0..<ch {
                        let plane = img + k * size * size
                        for p1 in 0..<ps {
                            let src = plane + (i * ps + p1) * size + j * ps
                            if face {
                                for p2 in 0..<ps { dst[(p1 * ps + p2) * ch + k] = src[p2] }
                            } else {
                                (dst + (k * ps + p1) * ps).update(from: src, count: ps)
                            }
                        }
                    }
                }
            }
        }
    }
}
