import random, sys
seed=int(sys.argv[1]); n=int(sys.argv[2]); out=sys.argv[3]
r=random.Random(seed)
keys=[chr(ord('a')+i) for i in range(r.randint(1,6))]
t=r.randint(0, 3000)
lines=["# random input seed %d" % seed]
for i in range(n):
    t+=r.choice([0,0,1,5,20,50,100,300,700,1500])
    jitter = 0
    p=r.random()
    if p<0.15: jitter=-r.randint(0,400)
    elif p<0.2: jitter=-r.randint(0,3000)
    elif p<0.22: jitter=-r.randint(0,20000)
    v=r.randint(-1000,1000)
    lines.append("%s,%d,%d" % (r.choice(keys), max(0,t+jitter), v))
    if r.random()<0.03: lines.append("")
open(out,"w").write("\n".join(lines)+"\n")
